require ["ihave", "fileinto"];
if ihave "fileinto" { fileinto "Have"; }
