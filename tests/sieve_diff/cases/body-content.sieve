# message: multipart.eml
require ["body", "fileinto"];
if body :content "text/html" :contains "<b>invoice</b>" { fileinto "Html"; }
if body :content "application/pdf" :contains "secret" { fileinto "PdfDecoded"; }
