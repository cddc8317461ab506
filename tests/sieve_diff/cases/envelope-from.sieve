require ["envelope", "fileinto"];
if envelope :is "from" "alice@example.org" { fileinto "FromAlice"; }
