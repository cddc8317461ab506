require "reject";
if address :domain "from" "example.org" { reject "We do not accept mail from you."; }
