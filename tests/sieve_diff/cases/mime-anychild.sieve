# message: multipart.eml
require ["mime", "fileinto"];
if header :mime :anychild :subtype "content-type" "html" { fileinto "HasHtml"; }
