require ["regex", "fileinto", "variables"];
if header :regex "subject" "^([a-z]+) (rep[a-z]+)$" { fileinto "re-${2}"; }
