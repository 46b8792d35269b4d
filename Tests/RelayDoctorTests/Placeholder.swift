// The doctor's tests land here.
