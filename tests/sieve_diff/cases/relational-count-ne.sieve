require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :count "ne" :comparator "i;ascii-numeric" "x-missing" "0" { fileinto "Wrong"; } else { fileinto "Zero"; }
