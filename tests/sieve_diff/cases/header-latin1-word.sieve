# message: badfrom.eml
require "fileinto";
if header :contains "subject" "Résumé" { fileinto "Latin1"; }
