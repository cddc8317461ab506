require ["envelope", "fileinto"];
if envelope :localpart :is "to" "bob+lists" { fileinto "Local"; }
if envelope :domain :is "to" "EXAMPLE.test" { fileinto :copy "Domain"; }
