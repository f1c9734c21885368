jsx
