# to: bob@example.test
require ["envelope", "subaddress", "fileinto"];
if envelope :detail "to" "" { fileinto "EmptyDetail"; }
if envelope :user "to" "bob" { fileinto :copy "User"; }
