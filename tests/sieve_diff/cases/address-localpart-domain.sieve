require "fileinto";
if address :localpart :is "from" "ALICE" { fileinto "Alice"; }
if address :domain :is "cc" "example.com" { fileinto :copy "Com"; }
