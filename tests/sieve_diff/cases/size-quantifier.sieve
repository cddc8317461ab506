require "fileinto";
if size :under 1K { fileinto "UnderK"; } else { fileinto "OverK"; }
