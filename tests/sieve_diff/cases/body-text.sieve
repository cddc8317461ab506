# message: multipart.eml
require ["body", "fileinto"];
if body :text :contains "Payment due" { fileinto "Due"; }
