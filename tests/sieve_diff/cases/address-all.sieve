require "fileinto";
if address :all :is "to" "carol@example.net" { fileinto "Carol"; }
