# message: ham.eml
require ["spamtestplus", "relational", "comparator-i;ascii-numeric", "fileinto", "variables"];
if spamtest :percent :matches "*" { fileinto "pct-${1}"; }
