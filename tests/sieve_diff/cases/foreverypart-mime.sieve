# message: multipart.eml
require ["foreverypart", "mime", "fileinto", "variables"];
foreverypart {
  if header :mime :type "content-type" "application" {
    if header :mime :param "name" :matches "content-type" "*.pdf" { fileinto "Pdf"; break; }
  }
}
