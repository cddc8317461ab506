redirect "bob@example.test";
