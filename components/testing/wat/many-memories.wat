;; Hostile test component: nine core instances with a one-page memory each, one more memory
;; than Trellis lets a component take from the shared pool. It must be refused when loaded, alone.
(component
  (core module $memory (memory 1))
  (core instance (instantiate $memory))
  (core instance (instantiate $memory))
  (core instance (instantiate $memory))
  (core instance (instantiate $memory))
  (core instance (instantiate $memory))
  (core instance (instantiate $memory))
  (core instance (instantiate $memory))
  (core instance (instantiate $memory))
  (core instance (instantiate $memory)))
