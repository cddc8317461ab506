# message: nosubject.eml
require ["date", "fileinto"];
if date :is "resent-date" "year" "2026" { fileinto "Never"; } else { fileinto "NoResent"; }
