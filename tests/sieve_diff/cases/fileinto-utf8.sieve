require "fileinto";
fileinto "Café";
