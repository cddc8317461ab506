require "fileinto";
if size :over 100 { fileinto "Big"; }
if size :under 10K { fileinto :copy "Small"; }
