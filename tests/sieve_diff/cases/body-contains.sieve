require ["body", "fileinto"];
if body :contains "quarterly report" { fileinto "Reports"; }
