# message: multipart.eml
require ["body", "fileinto"];
if body :raw :contains "JVBERi0" { fileinto "HasPdfBytes"; }
