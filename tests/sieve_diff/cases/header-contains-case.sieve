require "fileinto";
if header :contains "SUBJECT" "QUARTERLY" { fileinto "Case"; }
