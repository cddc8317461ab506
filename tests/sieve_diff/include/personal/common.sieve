require "fileinto"; fileinto "FromInclude";
