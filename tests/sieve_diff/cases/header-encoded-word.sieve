# message: group.eml
require "fileinto";
if header :contains "subject" "Café" { fileinto "Decoded"; }
