# message: badfrom.eml
require "fileinto";
if header :is "to" "second@example.test" { fileinto "Second"; }
if address :is "to" "second@example.test" { fileinto :copy "SecondAddr"; }
