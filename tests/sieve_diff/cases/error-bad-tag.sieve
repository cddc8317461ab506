require "fileinto";
if header :nonsense "subject" "x" { keep; }
