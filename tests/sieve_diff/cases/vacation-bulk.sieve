# message: bulk.eml
# from: news@shop.example.com
require "vacation";
vacation :subject "Away" "Away.";
