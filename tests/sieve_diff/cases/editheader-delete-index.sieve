require ["editheader", "index", "fileinto"];
addheader "X-A" "1";
addheader "X-A" "2";
deleteheader :index 1 "x-a";
if header :is "x-a" "1" { fileinto "One"; } elsif header :is "x-a" "2" { fileinto "Two"; }
