require ["date", "relational", "fileinto"];
if date :is "date" "year" "2026" { fileinto "Y2026"; }
if date :value "ge" :originalzone "date" "hour" "09" { fileinto :copy "Morning"; }
