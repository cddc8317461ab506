require ["regex", "fileinto"];
if header :regex :comparator "i;octet" "subject" "^quarterly" { fileinto "Lower"; }
if header :regex :comparator "i;octet" "subject" "^Quarterly" { fileinto :copy "Upper"; }
