require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :value "gt" :comparator "i;ascii-numeric" "x-score" "40" { fileinto "High"; }
if header :value "lt" :comparator "i;ascii-numeric" "x-priority" "2" { fileinto :copy "Urgent"; }
