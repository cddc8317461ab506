require "fileinto";
if size :over 2M { fileinto "Huge"; }
if size :under 1 { fileinto "Empty"; }
