# message: badfrom.eml
require "fileinto";
if address :all :matches "from" "*" { fileinto "AllMatches"; }
if address :domain :matches "from" "*" { fileinto :copy "DomainMatches"; }
