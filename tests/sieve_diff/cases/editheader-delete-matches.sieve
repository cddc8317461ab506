require ["editheader", "fileinto"];
deleteheader :matches "x-score" "4*";
deleteheader :contains "x-priority" "9";
if exists "x-score" { fileinto "Score"; } elsif exists "x-priority" { fileinto "Priority"; }
