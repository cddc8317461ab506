require ["relational", "fileinto"];
if header :value "gt" "subject" "P" { fileinto "AfterP"; }
