require "fileinto";
if header :is "x-priority" "1" { fileinto "P1"; }
elsif header :is "x-priority" "3" { fileinto "P3"; }
else { fileinto "Other"; }
