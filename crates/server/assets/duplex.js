// duplex.js: being written
