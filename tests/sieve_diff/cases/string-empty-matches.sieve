require ["variables", "fileinto"];
if string :matches "" "*" { fileinto "EmptyStar"; }
if string :is "" "" { fileinto :copy "EmptyIs"; }
