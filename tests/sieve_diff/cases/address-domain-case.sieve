require "fileinto";
if address :domain :is "to" "example.net" { fileinto "NetDomain"; }
