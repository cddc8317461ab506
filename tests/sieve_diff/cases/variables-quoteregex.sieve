require ["variables", "regex", "fileinto"];
set :quoteregex "q" "a.b*c";
if string :regex "a.b*c" "^${q}$" { fileinto "Quoted"; }
if string :regex "axbbc" "^${q}$" { fileinto "Wrong"; }
