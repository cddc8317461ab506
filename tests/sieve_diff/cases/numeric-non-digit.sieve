require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :value "gt" :comparator "i;ascii-numeric" "subject" "99999" { fileinto "Infinity"; }
if header :is :comparator "i;ascii-numeric" "x-score" "042" { fileinto :copy "LeadingZero"; }
