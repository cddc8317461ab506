require ["editheader", "index", "fileinto", "variables"];
addheader :last "X-Trace" "one";
addheader "X-Trace" "zero";
if header :index 1 "x-trace" "zero" { if header :index 1 :last "x-trace" "one" { fileinto "Ordered"; } }
