require ["variables", "fileinto"];
if address :matches :all "from" "*@*" { fileinto "user-${1}.dom-${2}"; }
