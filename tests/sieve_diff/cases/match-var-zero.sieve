require ["variables", "fileinto"];
if header :matches "subject" "Q*ly *" { fileinto "${0}|${1}|${2}"; }
