require ["subaddress", "fileinto"];
if address :user "cc" "dave" { fileinto "Dave"; }
if address :detail :matches "cc" "n*" { fileinto :copy "News"; }
