require "fileinto";
if not not exists "subject" { fileinto "Double"; }
