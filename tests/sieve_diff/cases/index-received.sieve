require ["index", "date", "fileinto"];
if header :index 1 :contains "received" "mx1.example.org by mx.example.test" { fileinto "First"; }
if header :index 1 :last :contains "received" "laptop" { fileinto :copy "Last"; }
