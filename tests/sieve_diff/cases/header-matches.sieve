require "fileinto";
if header :matches "subject" "Quarterly r?port" { fileinto "Q"; }
if header :matches "from" "*<*@example.org>" { fileinto :copy "Org"; }
