require "fileinto";
if header :contains "subject" "report" { fileinto "Reports"; return; }
fileinto "NotReports";
