// A module of the app's own: require() loads files under api/ by relative path.
exports.greeting = (name) => `Hello, ${name}! This JSON came from api/main.js.`;
