require ["date", "fileinto"];
if date :is "date" "weekday" "2" { fileinto "Tuesday"; }
