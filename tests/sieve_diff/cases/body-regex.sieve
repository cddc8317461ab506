require ["body", "regex", "fileinto"];
if body :text :regex "up [0-9]+ PERCENT" { fileinto "Percent"; }
