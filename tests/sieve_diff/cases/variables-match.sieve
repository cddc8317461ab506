require ["variables", "fileinto"];
if header :matches "subject" "* report" { fileinto "Got-${1}"; }
