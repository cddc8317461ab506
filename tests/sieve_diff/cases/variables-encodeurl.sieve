require ["variables", "enotify", "fileinto"];
set :encodeurl "u" "a b&c";
if string :is "${u}" "a%20b%26c" { fileinto "Encoded"; }
