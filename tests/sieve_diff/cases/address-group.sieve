# message: group.eml
require ["fileinto", "relational", "comparator-i;ascii-numeric"];
if address :is :all "cc" "carol@example.net" { fileinto "Carol"; }
if address :count "eq" :comparator "i;ascii-numeric" "cc" "3" { fileinto :copy "Three"; }
